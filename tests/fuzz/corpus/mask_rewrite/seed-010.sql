SELECT  btrim(email) /* c */ FROM
	customers