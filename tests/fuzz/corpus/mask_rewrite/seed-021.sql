SELECT  lag(email) OVER (ORDER BY id) /* c */ FROM
	customers