SELECT  array_to_string(ARRAY[ssn], ',') /* c */ FROM
	customers